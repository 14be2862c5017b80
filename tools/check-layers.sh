#!/bin/sh
# Checks that the C core (src/) is built in layers with no call back up.
#
# Every src/*.c names its layer in its top comment, on a line of its own:
#
#   ** Layer 3 (transfers) -- may call: socket.c, response.c
#   ** Layer 0 (clock) -- may call: nothing
#
# and this script fails, naming file and function, when
#   - a .c file has no such line, or lists a file that is not of a lower layer;
#   - a .c file refers to a wf_* function defined in another .c file that its line
#     does not list (a call, or the function's address);
#   - a file includes the header of a higher layer (x.h belongs to x.c's layer; a
#     header with no .c of its name, such as private.h or compat.h, may be included
#     anywhere and may include only headers like itself).
# Comments and string literals are ignored. With -v it prints the graph it found.
#
#   sh tools/check-layers.sh [-v]
set -u
cd "$(dirname "$0")/.." || exit 1
verbose=0
[ "${1:-}" = -v ] && verbose=1

awk -v verbose="$verbose" '
function base(path) { sub(/.*\//, "", path); return path }
function stem(name) { sub(/\.[ch]$/, "", name); return name }

FNR == 1 {
  file = base(FILENAME)
  order[++file_count] = file
  incomment = 0
}

# The layer line, read from the raw text of a .c file; its list may go on over the
# next comment lines, as long as they hold nothing but file names.
continued == file && /^\*\*( +[a-z0-9_]+\.c,?)+ *$/ { may_call(file, substr($0, 3)); next }
{ continued = "" }
file ~ /\.c$/ && !(file in layer) && match($0, /^\*\* Layer [0-9]+ /) {
  layer[file] = substr($0, 10, RLENGTH - 10) + 0
  list = $0
  if (!sub(/.* -- may call: */, "", list))
    problem(file ": its layer line has no \"-- may call:\" list")
  else if (list != "nothing") { may_call(file, list); continued = file }
}

# Includes, from the raw text (the code below has its strings blanked).
match($0, /^#[ \t]*include[ \t]*"[^"]+"/) {
  header = $0
  sub(/^#[ \t]*include[ \t]*"/, "", header)
  sub(/".*/, "", header)
  includes[file, header] = 1
}

{
  # The line without comments and string or character literals.
  line = $0
  code = ""
  while (line != "") {
    if (incomment) {
      i = index(line, "*/")
      if (i == 0) { line = ""; break }
      line = substr(line, i + 2)
      incomment = 0
      continue
    }
    if (!match(line, /\/\*|\/\/|"|\047/)) { code = code line; break }
    code = code substr(line, 1, RSTART - 1) " "
    token = substr(line, RSTART, RLENGTH)
    line = substr(line, RSTART + RLENGTH)
    if (token == "/*") incomment = 1
    else if (token == "//") line = ""
    else {
      while (line != "") {
        c = substr(line, 1, 1)
        line = substr(line, 2)
        if (c == "\\") line = substr(line, 2)
        else if (c == token) break
      }
    }
  }

  # A definition: at the start of a line, not static, not a prototype.
  if (file ~ /\.c$/ && code ~ /^[A-Za-z_]/ && code !~ /^(static|typedef|extern)[ \t]/ &&
      code !~ /;[ \t]*$/ && index(code, "(") > 0) {
    head = substr(code, 1, index(code, "(") - 1)
    if (match(head, /wf_[A-Za-z0-9_]*[ \t]*$/)) {
      name = substr(head, RSTART, RLENGTH)
      sub(/[ \t]+$/, "", name)
      if (name in defined && defined[name] != file)
        problem(name " is defined in both " defined[name] " and " file)
      defined[name] = file
    }
  }

  # Every wf_ identifier it names.
  rest = " " code
  while (match(rest, /[^A-Za-z0-9_]wf_[A-Za-z0-9_]+/)) {
    name = substr(rest, RSTART + 1, RLENGTH - 1)
    if (!((file, name) in used)) { used[file, name] = 1; uses[file] = uses[file] " " name }
    rest = substr(rest, RSTART + RLENGTH)
  }
}

function problem(text) { problems[++problem_count] = text }
function may_call(file, list,    count, names, i) {
  count = split(list, names, /[ ,]+/)
  for (i = 1; i <= count; i++) if (names[i] != "") may[file, names[i]] = 1
}

END {
  # Calls across files, in the order of the files and the names.
  for (f = 1; f <= file_count; f++) {
    file = order[f]
    if (file !~ /\.c$/) continue
    count = split(uses[file], names, " ")
    for (i = 1; i <= count; i++) {
      name = names[i]
      if (!(name in defined) || defined[name] == file) continue
      target = defined[name]
      if (!((file, target) in edge)) edges[file] = edges[file] " " target
      edge[file, target] = edge[file, target] " " name
    }
  }

  if (verbose) {
    for (n = 99; n >= -1; n--)
      for (f = 1; f <= file_count; f++) {
        file = order[f]
        if (file !~ /\.c$/ || (n >= 0 ? !(file in layer) || layer[file] != n : file in layer))
          continue
        printf "%s%s ->", file, (file in layer) ? " (layer " layer[file] ")" : " (no layer)"
        count = split(edges[file], targets, " ")
        if (count == 0) printf " nothing"
        for (i = 1; i <= count; i++) printf " %s [%s ]", targets[i], edge[file, targets[i]]
        printf "\n"
      }
  }

  for (f = 1; f <= file_count; f++) {
    file = order[f]
    if (file !~ /\.c$/) continue
    if (!(file in layer)) {
      problem(file ": no \"** Layer N (name) -- may call: ...\" line in its top comment")
      continue
    }
    for (key in may) {
      split(key, pair, SUBSEP)
      if (pair[1] != file) continue
      if (!(pair[2] in layer))
        problem(file ": may call " pair[2] ", which is not a layered file of src/")
      else if (layer[pair[2]] >= layer[file])
        problem(file " (layer " layer[file] ") may call " pair[2] \
                " (layer " layer[pair[2]] "): not a lower layer")
    }
    count = split(edges[file], targets, " ")
    for (i = 1; i <= count; i++)
      if (!((file, targets[i]) in may))
        problem(file " uses" edge[file, targets[i]] " of " targets[i] \
                ", which it may not call")
  }

  for (key in includes) {
    split(key, pair, SUBSEP)
    from = pair[1]
    to = stem(pair[2]) ".c"
    if (!(to in layer)) continue                  # compat.h, private.h: below every layer
    own = stem(from) ".c"
    if (!(own in layer))
      problem(from " includes " pair[2] ": a header with no layer includes a layered one")
    else if (layer[to] > layer[own])
      problem(from " (layer " layer[own] ") includes " pair[2] " (layer " layer[to] ")")
  }

  for (i = 1; i <= problem_count; i++) print "check-layers: " problems[i]
  exit problem_count > 0
}
' src/*.c src/*.h
