from typing import List


class Solution:
    def maxProduct(self, nums: List[int]) -> int:
        # Kadane's idea copied from max-sum: loses the most negative product.
        best = cur = nums[0]
        for x in nums[1:]:
            cur = max(x, cur * x)
            best = max(best, cur)
        return best
