; Context query for Ruby (see lsp/context/languages.py for the captures).

(method
  name: (_) @name
  body: (_)? @body) @scope.function

(singleton_method
  name: (_) @name
  body: (_)? @body) @scope.function

(class
  name: (_) @name
  body: (_)? @body) @scope.class

(singleton_class
  value: (_) @name
  body: (_)? @body) @scope.class

(module
  name: (_) @name
  body: (_)? @body) @scope.module

(assignment
  left: (constant) @name) @definition.constant

(call
  method: (identifier) @_require
  (#any-of? @_require "require" "require_relative" "load")) @import

(identifier) @reference
(constant) @reference
