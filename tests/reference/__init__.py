"""Float64 loop references written from the papers' formulas (independent of src/)."""
