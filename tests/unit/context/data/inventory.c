#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "inventory.h"

#define MAX_ITEMS 128

/* One kind of thing in stock. */
struct item {
    char name[64];
    int quantity;
};

typedef struct inventory {
    struct item items[MAX_ITEMS];
    size_t count;
} inventory_t;

static int parse_quantity(const char *raw)
{
    const char *x = strchr(raw, 'x');
    if (x != NULL) {
        return atoi(raw) * atoi(x + 1);
    }
    return atoi(raw);
}

/* Find an item by name, or NULL. */
static struct item *find_item(inventory_t *inv, const char *name)
{
    for (size_t i = 0; i < inv->count; i++) {
        if (strcmp(inv->items[i].name, name) == 0) {
            return &inv->items[i];
        }
    }
    return NULL;
}

int inventory_add(inventory_t *inv, const char *name, const char *raw)
{
    struct item *item = find_item(inv, name);
    if (item == NULL) {
        if (inv->count == MAX_ITEMS) {
            return -1;
        }
        item = &inv->items[inv->count++];
        strncpy(item->name, name, sizeof item->name - 1);
    }
    item->quantity += parse_quantity(raw);
    return item->quantity;
}

int inventory_save(const inventory_t *inv, FILE *out)
{
    for (size_t i = 0; i < inv->count; i++) {
        fprintf(out, "%s %d\n", inv->items[i].name, inv->items[i].quantity);
    }
    log_event("save", (int)inv->count);
    return 0;
}
