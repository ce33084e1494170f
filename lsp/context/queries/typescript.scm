; Context query for TypeScript and TSX (see lsp/context/languages.py for the captures).

(function_declaration
  name: (identifier) @name
  body: (_) @body) @scope.function

(generator_function_declaration
  name: (identifier) @name
  body: (_) @body) @scope.function

(class_declaration
  name: (type_identifier) @name
  body: (_) @body) @scope.class

(abstract_class_declaration
  name: (type_identifier) @name
  body: (_) @body) @scope.class

(interface_declaration
  name: (type_identifier) @name
  body: (_) @body) @scope.interface

(enum_declaration
  name: (identifier) @name
  body: (_) @body) @scope.enum

(internal_module
  name: (_) @name
  body: (_) @body) @scope.namespace

(method_definition
  name: (_) @name
  body: (_) @body) @scope.method

(lexical_declaration
  (variable_declarator
    name: (identifier) @name
    value: [
      (arrow_function body: (_) @body)
      (function_expression body: (_) @body)
    ])) @scope.function

(variable_declaration
  (variable_declarator
    name: (identifier) @name
    value: [
      (arrow_function body: (_) @body)
      (function_expression body: (_) @body)
    ])) @scope.function

(public_field_definition
  name: (_) @name
  value: (arrow_function body: (_) @body)) @scope.method

; declarations without a body
(type_alias_declaration
  name: (type_identifier) @name) @definition.type

(function_signature
  name: (identifier) @name) @definition.function

(abstract_method_signature
  name: (_) @name) @definition.method

(method_signature
  name: (_) @name) @definition.method

(property_signature
  name: (_) @name) @definition.field

(public_field_definition
  name: (_) @name) @definition.field

(program
  (lexical_declaration
    (variable_declarator name: (identifier) @name)) @definition.variable)

(program
  (variable_declaration
    (variable_declarator name: (identifier) @name)) @definition.variable)

(export_statement
  declaration: (lexical_declaration
    (variable_declarator name: (identifier) @name)) @definition.variable)

(import_statement) @import

(lexical_declaration
  (variable_declarator
    value: (call_expression
      function: (identifier) @_require
      (#eq? @_require "require")))) @import

(identifier) @reference
(property_identifier) @reference
(shorthand_property_identifier) @reference
(type_identifier) @reference
