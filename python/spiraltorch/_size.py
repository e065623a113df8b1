"""st.Size, the type of Tensor.shape: a tuple of ints, as torch.Size."""


class Size(tuple):
    """The shape of a tensor: a tuple of ints that prints as ``st.Size([2, 3])``."""

    __slots__ = ()

    def numel(self) -> int:
        """The number of elements a tensor of this shape holds."""
        n = 1
        for s in self:
            n *= s
        return n

    def __repr__(self) -> str:
        return f"st.Size({list(self)})"

    def __getitem__(self, index):
        item = tuple.__getitem__(self, index)
        return Size(item) if isinstance(index, slice) else item
