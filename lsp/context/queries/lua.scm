; Context query for Lua (see lsp/context/languages.py for the captures).

; function f() / local function f()
(function_declaration
  name: (identifier) @name
  body: (_) @body) @scope.function

; function M.f()
(function_declaration
  name: (dot_index_expression
    field: (identifier) @name)
  body: (_) @body) @scope.function

; function M:f()
(function_declaration
  name: (method_index_expression
    method: (identifier) @name)
  body: (_) @body) @scope.method

; f = function() ... end, local f = function() ... end (`local` is a prefix: see the language table)
(assignment_statement
  (variable_list
    name: (_) @name)
  (expression_list
    value: (function_definition
      body: (_) @body))) @scope.function

(chunk
  (variable_declaration
    (assignment_statement
      (variable_list
        name: (identifier) @name)) @definition.variable))

(assignment_statement
  (expression_list
    value: (function_call
      name: (identifier) @_require
      (#eq? @_require "require")))) @import

(identifier) @reference
