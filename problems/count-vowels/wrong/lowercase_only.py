def count_vowels(s: str) -> int:
    # Forgets upper-case vowels.
    return sum(1 for ch in s if ch in "aeiou")
