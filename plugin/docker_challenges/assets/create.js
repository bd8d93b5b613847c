// Nothing to wire: the docker fields are plain form inputs.
