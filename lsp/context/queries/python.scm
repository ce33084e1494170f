; Context query for Python (see lsp/context/languages.py for the meaning of the captures).

; Scopes: they enclose code; the signature is the text before @body.
(function_definition
  name: (identifier) @name
  body: (_) @body) @scope.function

(class_definition
  name: (identifier) @name
  body: (_) @body) @scope.class

; Definitions that do not enclose code: module constants and class attributes.
(module
  (expression_statement
    (assignment
      left: (identifier) @name)) @definition.variable)

(class_definition
  body: (block
    (expression_statement
      (assignment
        left: (identifier) @name)) @definition.field))

; Imports.
(import_statement) @import
(import_from_statement) @import
(future_import_statement) @import

; Names that may refer to a definition.
(identifier) @reference
