//! Inventory management.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

pub const DEFAULT_PATH: &str = "inventory.json";

/// One kind of thing in stock.
#[derive(Debug, Clone, Default)]
pub struct Item {
    pub name: String,
    pub quantity: u32,
}

pub enum Unit {
    Kilogram,
    Pound,
}

pub trait Store {
    fn add(&mut self, name: &str, raw: &str) -> Result<&Item, String>;
}

/// Parse "12" or "3x4".
pub fn parse_quantity(raw: &str) -> Result<u32, String> {
    match raw.split_once('x') {
        Some((left, right)) => {
            let l: u32 = left.parse().map_err(|e| format!("{e}"))?;
            let r: u32 = right.parse().map_err(|e| format!("{e}"))?;
            Ok(l * r)
        }
        None => raw.parse().map_err(|e| format!("{e}")),
    }
}

pub struct Inventory {
    path: PathBuf,
    items: HashMap<String, Item>,
}

impl Inventory {
    pub fn new(path: &Path) -> Self {
        Inventory { path: path.to_path_buf(), items: HashMap::new() }
    }

    pub fn save(&self) -> std::io::Result<()> {
        let lines: Vec<String> = self.items.values().map(|i| format!("{} {}", i.name, i.quantity)).collect();
        log_event("save", lines.len());
        fs::write(&self.path, lines.join("\n"))
    }
}

impl Store for Inventory {
    fn add(&mut self, name: &str, raw: &str) -> Result<&Item, String> {
        let quantity = parse_quantity(raw)?;
        let item = self.items.entry(name.to_string()).or_default();
        item.quantity += quantity;
        Ok(item)
    }
}

macro_rules! item {
    ($name:expr) => {
        Item { name: $name.to_string(), quantity: 0 }
    };
}

mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!(parse_quantity("3x4"), Ok(12));
    }
}
