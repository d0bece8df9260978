"""Spot balances of the emulated account: free and locked amount per asset."""

from decimal import Decimal


class InsufficientBalance(Exception):
    """Raised when an asset's free balance cannot cover an amount to lock or spend."""


class SpotBalances:
    """
    Free and locked amounts per asset, changed only through lock/unlock/spend/credit.

    Every change records the asset as touched, so the venue can push ``outboundAccountPosition`` with the
    assets that changed (like Binance does) after each state change.
    """

    def __init__(self, starting: dict[str, Decimal]) -> None:
        self._free: dict[str, Decimal] = {asset: Decimal(amount) for asset, amount in starting.items()}
        self._locked: dict[str, Decimal] = {asset: Decimal(0) for asset in starting}
        self._touched: list[str] = []

    def free(self, asset: str) -> Decimal:
        """Return the free amount of ``asset``."""
        return self._free.get(asset, Decimal(0))

    def locked(self, asset: str) -> Decimal:
        """Return the locked amount of ``asset``."""
        return self._locked.get(asset, Decimal(0))

    def assets(self) -> list[str]:
        """Return every asset the account has held, sorted."""
        return sorted(self._free)

    def lock(self, asset: str, amount: Decimal) -> None:
        """Move ``amount`` from free to locked; raise ``InsufficientBalance`` if free is short."""
        if self.free(asset) < amount:
            raise InsufficientBalance(asset)
        self._add(asset, free=-amount, locked=amount)

    def unlock(self, asset: str, amount: Decimal) -> None:
        """Move ``amount`` from locked back to free."""
        self._add(asset, free=amount, locked=-amount)

    def spend_locked(self, asset: str, amount: Decimal) -> None:
        """Remove ``amount`` from the locked balance (a fill paid from a reservation)."""
        self._add(asset, free=Decimal(0), locked=-amount)

    def spend_free(self, asset: str, amount: Decimal) -> None:
        """Remove ``amount`` from the free balance (a taker fill without reservation, or a commission)."""
        self._add(asset, free=-amount, locked=Decimal(0))

    def credit(self, asset: str, amount: Decimal) -> None:
        """Add ``amount`` to the free balance."""
        self._add(asset, free=amount, locked=Decimal(0))

    def take_touched(self) -> list[str]:
        """Return the assets changed since the last call (in first-touch order) and forget them."""
        touched, self._touched = self._touched, []
        return touched

    def _add(self, asset: str, *, free: Decimal, locked: Decimal) -> None:
        self._free[asset] = self.free(asset) + free
        self._locked[asset] = self.locked(asset) + locked
        if asset not in self._touched:
            self._touched.append(asset)
