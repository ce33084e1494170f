import React, { useState } from "react";
import type { Item } from "./inventory";

interface Props {
  items: Item[];
  title?: string;
}

function formatQuantity(quantity: number): string {
  return quantity.toLocaleString();
}

export function InventoryTable({ items, title }: Props): JSX.Element {
  const [filter, setFilter] = useState<string>("");
  const visible = items.filter((item) => item.name.includes(filter));
  return (
    <table title={title}>
      {visible.map((item) => (
        <tr key={item.name}>
          <td>{formatQuantity(item.quantity)}</td>
        </tr>
      ))}
    </table>
  );
}
