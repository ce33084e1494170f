import React, { useState } from "react";
import { formatQuantity } from "./format";

function Row({ item }) {
  return (
    <tr>
      <td>{item.name}</td>
      <td>{formatQuantity(item.quantity)}</td>
    </tr>
  );
}

export default function InventoryTable({ items }) {
  const [filter, setFilter] = useState("");
  const visible = items.filter((item) => item.name.includes(filter));
  return (
    <table>
      {visible.map((item) => (
        <Row key={item.name} item={item} />
      ))}
    </table>
  );
}
