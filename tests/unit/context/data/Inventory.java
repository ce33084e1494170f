package com.example.inventory;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;

/**
 * A collection of items.
 */
public class Inventory {
    public static final String DEFAULT_PATH = "inventory.json";

    private final Path path;
    private final Map<String, Item> items = new HashMap<>();

    public Inventory(Path path) {
        this.path = path;
    }

    /** Parse "12" or "3x4". */
    static int parseQuantity(String raw) {
        int x = raw.indexOf('x');
        if (x >= 0) {
            return Integer.parseInt(raw.substring(0, x)) * Integer.parseInt(raw.substring(x + 1));
        }
        return Integer.parseInt(raw);
    }

    public Item add(String name, String rawQuantity) {
        Item item = items.computeIfAbsent(name, Item::new);
        item.quantity += parseQuantity(rawQuantity);
        return item;
    }

    @Override
    public String toString() {
        return "Inventory(" + items.size() + ")";
    }

    public void save() throws IOException {
        StringBuilder out = new StringBuilder();
        for (Item item : items.values()) {
            out.append(item.describe()).append('\n');
        }
        Events.log("save", items.size());
        Files.writeString(path, out.toString());
    }

    static class Item {
        final String name;
        int quantity;

        Item(String name) {
            this.name = name;
        }

        String describe() {
            return name + ": " + quantity;
        }
    }

    interface Store {
        Item add(String name, String rawQuantity);
    }

    enum Unit { KILOGRAM, POUND }
}
