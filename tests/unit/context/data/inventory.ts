import { promises as fs } from "fs";
import type { Logger } from "./logger";

export const DEFAULT_PATH = "inventory.json";

export interface Item {
  name: string;
  quantity: number;
  tags?: string[];
}

export type Quantities = Record<string, number>;

/** Parse a quantity like "12" or "3x4". */
export function parseQuantity(raw: string): number {
  if (raw.includes("x")) {
    const [left, right] = raw.split("x");
    return Number(left) * Number(right);
  }
  return Number(raw);
}

export enum Unit {
  Kilogram,
  Pound,
}

export class Inventory {
  private items = new Map<string, Item>();

  constructor(private readonly file: string = DEFAULT_PATH, private logger?: Logger) {}

  add(name: string, rawQuantity: string): Item {
    const item = this.items.get(name) ?? { name, quantity: 0 };
    item.quantity += parseQuantity(rawQuantity);
    this.items.set(name, item);
    return item;
  }

  async save(): Promise<void> {
    const data: Quantities = {};
    for (const [name, item] of this.items) {
      data[name] = item.quantity;
    }
    await fs.writeFile(this.file, JSON.stringify(data));
  }
}

export const restock = (inventory: Inventory, names: string[]): number => {
  let count = 0;
  for (const name of names) {
    count += inventory.add(name, "1").quantity;
  }
  logEvent("restock", count);
  return count;
};
