; Context query for Bash (see lsp/context/languages.py for the captures).

(function_definition
  name: (word) @name
  body: (_) @body) @scope.function

(program
  (variable_assignment
    name: (variable_name) @name) @definition.variable)

(program
  (declaration_command
    (variable_assignment
      name: (variable_name) @name)) @definition.variable)

; source file / . file
(command
  name: (command_name (word) @_source)
  (#any-of? @_source "source" ".")) @import

(command_name (word) @reference)
(variable_name) @reference
