"""Data preparation: turn raw stacks into training pairs as each paper describes (normalisation, alignment,
extended depth of field, masks, patch covers, focus curves, registration). Import from the submodules."""
