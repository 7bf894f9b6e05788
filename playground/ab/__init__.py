"""A/B: the arena of columns, blind votes, the rating, batch runs over prompt sets or dataset splits, checks, votes to datasets."""
