; Context query for C (see lsp/context/languages.py for the captures). C++ inherits it.

(function_definition
  declarator: (function_declarator
    declarator: (identifier) @name)
  body: (_) @body) @scope.function

(function_definition
  declarator: (pointer_declarator
    declarator: (function_declarator
      declarator: (identifier) @name))
  body: (_) @body) @scope.function

(function_definition
  declarator: (pointer_declarator
    declarator: (pointer_declarator
      declarator: (function_declarator
        declarator: (identifier) @name)))
  body: (_) @body) @scope.function

(struct_specifier
  name: (type_identifier) @name
  body: (_) @body) @scope.struct

(union_specifier
  name: (type_identifier) @name
  body: (_) @body) @scope.union

(enum_specifier
  name: (type_identifier) @name
  body: (_) @body) @scope.enum

(type_definition
  declarator: (type_identifier) @name) @definition.type

; prototypes
(declaration
  declarator: (function_declarator
    declarator: (identifier) @name)) @definition.function

(declaration
  declarator: (pointer_declarator
    declarator: (function_declarator
      declarator: (identifier) @name))) @definition.function

(preproc_def
  name: (identifier) @name) @definition.macro

(preproc_function_def
  name: (identifier) @name) @definition.macro

(translation_unit
  (declaration
    declarator: (init_declarator
      declarator: (identifier) @name)) @definition.variable)

(enumerator
  name: (identifier) @name) @definition.constant

(field_declaration
  declarator: (field_identifier) @name) @definition.field

(preproc_include) @import

(identifier) @reference
(type_identifier) @reference
(field_identifier) @reference
