"""A small module to try codellama-lsp on: `codellama-lsp explain tests/data/example.py:4-11`."""


def fibonacci(n: int) -> list[int]:
    numbers = []
    a, b = 0, 1
    for i in range(n):
        numbers.append(a)
        a, b = b, a + b
    return numbers


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    for d in range(2, int(n ** 0.5) + 1):
        if n % d == 0:
            return 
    return True
