def count_vowels(s: str) -> int:
    # Treats 'y' as a vowel.
    return sum(1 for ch in s.lower() if ch in "aeiouy")
