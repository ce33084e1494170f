local json = require("json")
local util = require "util"

local DEFAULT_PATH = "inventory.json"

-- Parse "12" or "3x4".
local function parse_quantity(raw)
  local left, right = raw:match("(%d+)x(%d+)")
  if left then
    return tonumber(left) * tonumber(right)
  end
  return tonumber(raw)
end

local Inventory = {}
Inventory.__index = Inventory

function Inventory.new(path)
  return setmetatable({ path = path or DEFAULT_PATH, items = {} }, Inventory)
end

function Inventory:add(name, raw)
  local item = self.items[name] or { name = name, quantity = 0 }
  item.quantity = item.quantity + parse_quantity(raw)
  self.items[name] = item
  return item
end

function Inventory:save()
  local file = assert(io.open(self.path, "w"))
  file:write(json.encode(self.items))
  file:close()
end

local restock = function(inventory, names)
  local count = 0
  for _, name in ipairs(names) do
    count = count + inventory:add(name, "1").quantity
  end
  util.log_event("restock", count)
  return count
end

return { Inventory = Inventory, parse_quantity = parse_quantity, restock = restock }
