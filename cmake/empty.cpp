// Intentionally empty: gives header-only libraries a translation unit.
