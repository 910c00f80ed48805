"""Fields of the talking-head renderers: `talking_head` (the head: space encoding, ambient
coordinate, density and colour) and `torso` (a 2-D deformation over a canonical image)."""
