std = "max"
max_line_length = 120

files["spec"] = { std = "+busted" }
-- Runs inside Neovim, which provides the global `vim`.
files["spec/support/nvim_walk.lua"] = { read_globals = { "vim" } }
