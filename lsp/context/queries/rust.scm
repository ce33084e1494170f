; Context query for Rust (see lsp/context/languages.py for the captures).

(function_item
  name: (identifier) @name
  body: (block) @body) @scope.function

(impl_item
  type: (_) @name
  body: (declaration_list) @body) @scope.impl

(trait_item
  name: (type_identifier) @name
  body: (declaration_list) @body) @scope.trait

(struct_item
  name: (type_identifier) @name
  body: (_) @body) @scope.struct

(struct_item
  name: (type_identifier) @name
  !body) @definition.struct

(enum_item
  name: (type_identifier) @name
  body: (_) @body) @scope.enum

(union_item
  name: (type_identifier) @name
  body: (_) @body) @scope.union

(mod_item
  name: (identifier) @name
  body: (declaration_list) @body) @scope.module

(closure_expression
  body: (block) @body) @scope.function

(function_signature_item
  name: (identifier) @name) @definition.function

(macro_definition
  name: (identifier) @name) @definition.macro

(const_item
  name: (identifier) @name) @definition.constant

(static_item
  name: (identifier) @name) @definition.constant

(type_item
  name: (type_identifier) @name) @definition.type

(field_declaration
  name: (field_identifier) @name) @definition.field

(enum_variant
  name: (identifier) @name) @definition.variant

(use_declaration) @import
(extern_crate_declaration) @import

(identifier) @reference
(type_identifier) @reference
(field_identifier) @reference
