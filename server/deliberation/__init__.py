"""What the jury deliberates with: the results workbook, the plots, rank stability, and the
demo event that lets a newcomer try all of it."""
