"""Templates: render and preview, versioned storage, and training pairs generated from chunks of facts."""
