"""Input and output: where files live and how images become arrays. Train, batch and serve all use it.

=================  ================================================================================================
module             what it holds
=================  ================================================================================================
:mod:`.s3`         ``S3Settings`` (from the environment, handed to Ray workers), the one S3 client per settings,
                   and ``s3_error``, which words every S3 failure
:mod:`.files`      files by reference (``localize``, ``read_bytes``: local, ``file://``, ``s3://``, MLflow URIs)
                   and atomic local writes (``write_temporary``, ``write_atomic``, relative to a ``dir_fd``)
:mod:`.locations`  batch INPUT/OUTPUT and lists of inputs: ``Location``, ``check_key`` (keys are data, not
                   instructions), ``read_uri(within=)``, ``write_output`` and ``open_folder`` (no symbolic link
                   followed), ``scan_inputs`` / ``list_inputs``
:mod:`.formats`    the one table of image formats: extensions, media types, aliases (JPG, TIF), what is writable
:mod:`.images`     ``ImageRecord``, ``decode_image`` / ``encode_image``, ``read_image_file`` / ``write_image_file``
:mod:`.tiff16`     the 16-bit TIFF paths Pillow cannot take (read and write)
=================  ================================================================================================

Array helpers (``to_float``, ``from_float``, ``resize``) live in :mod:`pixelplexus.transforms`. Nothing here
imports ``batch``, ``training`` or ``serving``.
"""
