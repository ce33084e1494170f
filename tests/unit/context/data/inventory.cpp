#include <map>
#include <string>
#include <stdexcept>
#include "inventory.hpp"

namespace inventory {

constexpr const char *kDefaultPath = "inventory.json";

// Parse "12" or "3x4".
int parseQuantity(const std::string &raw) {
    auto x = raw.find('x');
    if (x != std::string::npos) {
        return std::stoi(raw.substr(0, x)) * std::stoi(raw.substr(x + 1));
    }
    return std::stoi(raw);
}

struct Item {
    std::string name;
    int quantity = 0;
};

template <typename T>
T clampQuantity(T value, T limit) {
    return value > limit ? limit : value;
}

class Inventory {
public:
    explicit Inventory(std::string path) : path_(std::move(path)) {}

    Item &add(const std::string &name, const std::string &raw) {
        Item &item = items_[name];
        item.name = name;
        item.quantity += parseQuantity(raw);
        logEvent("add", item.quantity);
        return item;
    }

    std::size_t size() const;

private:
    std::string path_;
    std::map<std::string, Item> items_;
};

std::size_t Inventory::size() const {
    return items_.size();
}

}  // namespace inventory
