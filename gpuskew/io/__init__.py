"""Files in and out: readers, validation rules and atomic writes (the one implementation).

``gpuskew.io.read`` reads input tables; ``gpuskew.io.validate`` checks them; ``gpuskew.io.atomic``
writes every output file (temporary file beside the target, fsync, rename).
"""

from gpuskew.io.atomic import (COMMIT_MARKER, PARQUET_ROW_GROUP_SIZE, OutputExists, OutputStage, check_output_free,
                               dumps_json, fsync_dir, json_default, publish_run, write_arrow, write_atomic, write_json,
                               write_new, write_parquet, write_parquet_new, write_text)
from gpuskew.io.read import (NUMERIC_CSV_COLUMNS, TABLE_EXTENSIONS, find_table_file, read_book_dir, read_table,
                             to_arrow_table)

__all__ = ["COMMIT_MARKER", "PARQUET_ROW_GROUP_SIZE", "OutputExists", "OutputStage", "check_output_free",
           "dumps_json", "fsync_dir", "json_default", "publish_run", "write_arrow", "write_atomic", "write_json",
           "write_new", "write_parquet", "write_parquet_new", "write_text", "NUMERIC_CSV_COLUMNS",
           "TABLE_EXTENSIONS", "find_table_file", "read_book_dir", "read_table", "to_arrow_table"]
