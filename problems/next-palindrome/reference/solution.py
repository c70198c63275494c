import sys


def next_palindrome(s: str) -> str:
    n = len(s)
    if set(s) == {"9"}:
        return "1" + "0" * (n - 1) + "1"
    left = s[: (n + 1) // 2]
    candidate = left + left[: n // 2][::-1]
    if candidate > s:  # same length, so string order is numeric order
        return candidate
    digits = list(left)
    i = len(digits) - 1
    while digits[i] == "9":
        digits[i] = "0"
        i -= 1
    digits[i] = str(int(digits[i]) + 1)
    left = "".join(digits)
    return left + left[: n // 2][::-1]


print(next_palindrome(sys.stdin.readline().strip()))
