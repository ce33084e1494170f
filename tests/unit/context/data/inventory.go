// Package inventory manages stock.
package inventory

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// DefaultPath is where the inventory is saved.
const DefaultPath = "inventory.json"

// Item is one kind of thing in stock.
type Item struct {
	Name     string
	Quantity int
}

// Store keeps items by name.
type Store interface {
	Add(name string, raw string) (*Item, error)
}

// ParseQuantity parses "12" or "3x4".
func ParseQuantity(raw string) (int, error) {
	if left, right, ok := strings.Cut(raw, "x"); ok {
		l, err := strconv.Atoi(left)
		if err != nil {
			return 0, err
		}
		r, err := strconv.Atoi(right)
		return l * r, err
	}
	return strconv.Atoi(raw)
}

// Inventory is a Store backed by a file.
type Inventory struct {
	path  string
	items map[string]*Item
}

// Add adds a quantity of an item.
func (inv *Inventory) Add(name string, raw string) (*Item, error) {
	quantity, err := ParseQuantity(raw)
	if err != nil {
		return nil, fmt.Errorf("bad quantity %q: %w", raw, err)
	}
	item, ok := inv.items[name]
	if !ok {
		item = &Item{Name: name}
		inv.items[name] = item
	}
	item.Quantity += quantity
	return item, nil
}

// Save writes the inventory.
func (inv *Inventory) Save() error {
	data, err := json.Marshal(inv.items)
	if err != nil {
		return err
	}
	logEvent("save", len(data))
	return os.WriteFile(inv.path, data, 0o644)
}
