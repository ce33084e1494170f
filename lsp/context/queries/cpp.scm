; inherits: c
; Context query for C++: the C patterns plus classes, namespaces, methods and qualified names.

(function_definition
  declarator: (function_declarator
    declarator: [(field_identifier) (qualified_identifier) (destructor_name) (operator_name)] @name)
  body: (_) @body) @scope.function

(function_definition
  declarator: (reference_declarator
    (function_declarator
      declarator: [(identifier) (field_identifier) (qualified_identifier) (operator_name)] @name))
  body: (_) @body) @scope.function

(function_definition
  declarator: (pointer_declarator
    declarator: (function_declarator
      declarator: [(field_identifier) (qualified_identifier) (operator_name)] @name))
  body: (_) @body) @scope.function

(class_specifier
  name: (_) @name
  body: (_) @body) @scope.class

(namespace_definition
  name: (_) @name
  body: (_) @body) @scope.namespace

(lambda_expression
  body: (compound_statement) @body) @scope.function

; member function declarations: std::size_t size() const;
(field_declaration
  declarator: (function_declarator
    declarator: (field_identifier) @name)) @definition.method

(alias_declaration
  name: (type_identifier) @name) @definition.type

(namespace_definition
  body: (declaration_list
    (declaration
      declarator: (init_declarator
        declarator: (_) @name)) @definition.variable))

(using_declaration) @import

(namespace_identifier) @reference
