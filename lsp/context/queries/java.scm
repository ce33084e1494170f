; Context query for Java (see lsp/context/languages.py for the captures).

(class_declaration
  name: (identifier) @name
  body: (_) @body) @scope.class

(interface_declaration
  name: (identifier) @name
  body: (_) @body) @scope.interface

(enum_declaration
  name: (identifier) @name
  body: (_) @body) @scope.enum

(record_declaration
  name: (identifier) @name
  body: (_) @body) @scope.record

(annotation_type_declaration
  name: (identifier) @name
  body: (_) @body) @scope.interface

(method_declaration
  name: (identifier) @name
  body: (_) @body) @scope.method

(constructor_declaration
  name: (identifier) @name
  body: (_) @body) @scope.constructor

(lambda_expression
  body: (block) @body) @scope.function

(method_declaration
  name: (identifier) @name
  !body) @definition.method

(field_declaration
  declarator: (variable_declarator
    name: (identifier) @name)) @definition.field

(constant_declaration
  declarator: (variable_declarator
    name: (identifier) @name)) @definition.constant

(import_declaration) @import

(identifier) @reference
(type_identifier) @reference
