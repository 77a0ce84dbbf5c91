# Shared by the benchmarks that print aligned tables (test/bench/10-finder.sh,
# 15-dense.sh, 25-encounters.sh); sourced, not run.  It only formats.

# '|'-separated lines on stdin as an aligned table, indented by two spaces
fmt_table() {
  awk -F'|' '{ for (i = 1; i <= NF; i++) { c[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) }
               if (NF > nf) nf = NF; n = NR }
             END { for (r = 1; r <= n; r++) { line = "  "
                     for (i = 1; i <= nf; i++) line = line sprintf("%-" w[i] "s  ", c[r, i])
                     sub(/ +$/, "", line); print line } }'
}
