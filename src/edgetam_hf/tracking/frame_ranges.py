"""A set of frame indices kept as sorted, disjoint inclusive ranges: the frames a bounded session
has forgotten are a run or two behind the tracking, so this stays a few pairs however long the
video (a plain set would grow by one entry per frame)."""


class FrameRanges:
    def __init__(self):
        self._ranges: list[list[int]] = []  # [first, last], sorted, neither overlapping nor touching

    def __contains__(self, frame_idx: int) -> bool:
        return any(first <= frame_idx <= last for first, last in self._ranges)

    def __len__(self) -> int:
        return sum(last - first + 1 for first, last in self._ranges)

    @property
    def num_ranges(self) -> int:
        return len(self._ranges)

    def add(self, frame_idx: int) -> None:
        if frame_idx in self:
            return
        self._ranges.append([frame_idx, frame_idx])
        self._ranges.sort()
        merged = [self._ranges[0]]
        for first, last in self._ranges[1:]:
            if first <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], last)
            else:
                merged.append([first, last])
        self._ranges = merged

    def discard(self, frame_idx: int) -> None:
        for index, (first, last) in enumerate(self._ranges):
            if first <= frame_idx <= last:
                pieces = [[first, frame_idx - 1], [frame_idx + 1, last]]
                self._ranges[index : index + 1] = [piece for piece in pieces if piece[0] <= piece[1]]
                return

    def clear(self) -> None:
        self._ranges.clear()
