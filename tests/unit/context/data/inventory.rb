require "json"
require_relative "lib/util"

module Shop
  DEFAULT_PATH = "inventory.json"

  # Parse "12" or "3x4".
  def self.parse_quantity(raw)
    left, right = raw.split("x", 2)
    right ? left.to_i * right.to_i : left.to_i
  end

  class Item
    attr_accessor :name, :quantity

    def initialize(name, quantity = 0)
      @name = name
      @quantity = quantity
    end
  end

  class Inventory
    def initialize(path = DEFAULT_PATH)
      @path = path
      @items = {}
    end

    def add(name, raw)
      item = (@items[name] ||= Item.new(name))
      item.quantity += Shop.parse_quantity(raw)
      item
    end

    def save
      Util.log_event("save", @items.size)
      File.write(@path, JSON.dump(@items.transform_values(&:quantity)))
    end
  end
end
