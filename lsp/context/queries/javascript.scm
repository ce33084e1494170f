; Context query for JavaScript and JSX (see lsp/context/languages.py for the captures).

(function_declaration
  name: (identifier) @name
  body: (_) @body) @scope.function

(generator_function_declaration
  name: (identifier) @name
  body: (_) @body) @scope.function

(class_declaration
  name: (identifier) @name
  body: (_) @body) @scope.class

(method_definition
  name: (_) @name
  body: (_) @body) @scope.method

; const f = (x) => {...}; let g = function () {...}
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

; class fields holding functions: handle = () => {...}
(field_definition
  property: (_) @name
  value: (arrow_function body: (_) @body)) @scope.method

; module-level constants and variables
(program
  (lexical_declaration
    (variable_declarator name: (identifier) @name)) @definition.variable)

(program
  (variable_declaration
    (variable_declarator name: (identifier) @name)) @definition.variable)

(export_statement
  declaration: (lexical_declaration
    (variable_declarator name: (identifier) @name)) @definition.variable)

(field_definition
  property: (_) @name) @definition.field

; imports, including const x = require("x")
(import_statement) @import

(lexical_declaration
  (variable_declarator
    value: (call_expression
      function: (identifier) @_require
      (#eq? @_require "require")))) @import

(variable_declaration
  (variable_declarator
    value: (call_expression
      function: (identifier) @_require
      (#eq? @_require "require")))) @import

(identifier) @reference
(property_identifier) @reference
(shorthand_property_identifier) @reference
