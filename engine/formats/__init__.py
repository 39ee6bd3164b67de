"""Motion file formats: BVH, Acclaim ASF/AMC, exponential-map text, and the bone maps that name
a file's joints as the 22 SMPL joints."""
