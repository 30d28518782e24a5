"""Streaming catalog readers: JSON array (plain, or wrapped in an object at [source] records), JSON Lines, CSV and
tab-separated text, XML feeds (RSS 2.0, Atom, other XML at [source] records), each optionally gzip-compressed. Pure,
like logic/.

Memory does not grow with the catalog: records are yielded one at a time, and no single record may be larger than
a limit (a JSON Lines line, a JSON array item, a CSV field), nor the whole file decompress to more than another one
(limits.ReaderLimits). Malformed input raises records.CatalogFormatError naming the file and the line or byte offset;
nothing partial is ever applied because the caller only acts once the whole file has been read.

detection tells a file's format from its name and checks its content; json_records, csv_records and xml_records
read the records; catalog opens a file and hands its records out (open_catalog, CatalogStream).
"""
