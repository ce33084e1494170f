; Context query for Go (see lsp/context/languages.py for the captures).

(function_declaration
  name: (identifier) @name
  body: (block) @body) @scope.function

(method_declaration
  name: (field_identifier) @name
  body: (block) @body) @scope.method

(func_literal
  body: (block) @body) @scope.function

(type_spec
  name: (type_identifier) @name
  type: (struct_type (field_declaration_list) @body)) @scope.struct

(type_spec
  name: (type_identifier) @name
  type: (interface_type)) @definition.interface

(type_spec
  name: (type_identifier) @name
  type: [(type_identifier) (qualified_type) (generic_type) (function_type) (map_type) (slice_type)
         (array_type) (pointer_type) (channel_type)]) @definition.type

(type_alias
  name: (type_identifier) @name) @definition.type

(const_spec
  name: (identifier) @name) @definition.constant

(source_file
  (var_declaration
    (var_spec
      name: (identifier) @name) @definition.variable))

(method_elem
  name: (field_identifier) @name) @definition.method

(field_declaration
  name: (field_identifier) @name) @definition.field

(import_declaration) @import

(identifier) @reference
(type_identifier) @reference
(field_identifier) @reference
