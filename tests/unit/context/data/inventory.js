import { readFile, writeFile } from "fs/promises";
import path from "path";
const util = require("util");

const DEFAULT_PATH = path.join(".", "inventory.json");

/**
 * Parse a quantity like "12" or "3x4".
 */
export function parseQuantity(raw) {
  if (raw.includes("x")) {
    const [left, right] = raw.split("x");
    return Number(left) * Number(right);
  }
  return Number(raw);
}

class Item {
  constructor(name, quantity = 0) {
    this.name = name;
    this.quantity = quantity;
  }

  totalWeight(unit) {
    return this.quantity * unit;
  }
}

export class Inventory {
  constructor(file = DEFAULT_PATH) {
    this.file = file;
    this.items = new Map();
  }

  add(name, rawQuantity) {
    const item = this.items.get(name) ?? new Item(name);
    item.quantity += parseQuantity(rawQuantity);
    this.items.set(name, item);
    return item;
  }

  async save() {
    const data = Object.fromEntries(this.items);
    await writeFile(this.file, JSON.stringify(data));
  }
}

export const restock = async (inventory, names) => {
  let count = 0;
  for (const name of names) {
    const item = inventory.add(name, "1");
    count += item.totalWeight(1.0);
  }
  logEvent("restock", count);
  return count;
};
