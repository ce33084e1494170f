-- Options: the defaults, and the user's options deep-merged over them.
local M = {}

---@class codellama.Keymaps
---@field accept string|false        insert mode: accept the ghost text (falls through when none is shown)
---@field accept_line string|false   insert mode: accept only the first line of the ghost text
---@field next string|false          insert mode: show the next suggestion
---@field prev string|false          insert mode: show the previous suggestion
---@field dismiss string|false       insert mode: hide the ghost text (falls through when none is shown)

M.defaults = {
  -- How to start the server. Any argv: { "python3", "-m", "lsp", "serve" } runs it from a checkout.
  cmd = { "codellama-lsp", "serve" },
  -- Extra environment for the server process (nil: inherit).
  cmd_env = nil,
  filetypes = {
    "bash", "c", "cpp", "cs", "css", "dart", "elixir", "erlang", "go", "haskell", "html", "java",
    "javascript", "javascriptreact", "json", "julia", "kotlin", "lua", "make", "markdown", "nix",
    "ocaml", "perl", "php", "python", "r", "ruby", "rust", "scala", "sh", "sql", "swift", "toml",
    "typescript", "typescriptreact", "vim", "yaml", "zig", "zsh",
  },
  root_markers = {
    ".git", "pyproject.toml", "setup.py", "package.json", "Cargo.toml", "go.mod", "pom.xml",
    "build.gradle", "Makefile", "CMakeLists.txt", ".hg",
  },
  -- The server's `codellama` settings section, camelCase as on the wire: backend, endpoint, apiToken,
  -- model, maxNewTokens, temperature, topP, stop, requestTimeout, logLevel,
  -- completion = { enable, disabledLanguages, debounceMs, maxLines, maxNewTokens, temperature }.
  -- Sent as initializationOptions and as workspace/didChangeConfiguration settings.
  settings = {},
  inline = {
    enable = true,
    -- "auto": Neovim's own vim.lsp.inline_completion on 0.12+, this plugin's ghost text before that.
    -- true: always the native one (0.12+ only); false: always this plugin's.
    native = "auto",
    debounce_ms = 75,
    hl_group = "Comment",
    -- Filetypes that get no ghost text (the commands still work there).
    disabled_filetypes = {},
    keymaps = {
      accept = "<Tab>",
      accept_line = "<M-l>",
      next = "<M-]>",
      prev = "<M-[>",
      dismiss = "<C-]>",
    },
  },
  -- Normal/visual mode mappings for the commands; false (the default) maps nothing.
  keymaps = {
    explain = false, -- e.g. "<leader>ce"
    refactor = false,
    docstring = false,
    ask = false,
    toggle = false,
  },
  -- Show answers as the model writes them: explanations grow in their float, refactorings and
  -- docstrings in a preview float that closes when the edit is offered (codellama/partial).
  streaming = true,
  float = {
    border = "rounded",
    max_width = 100,
    max_height = 30,
    enter = true, -- focus the explanation window (q or <Esc> closes it)
  },
  health = {
    -- `codellama-lsp check` probes the backend with a tiny generation; give a slow server time.
    check_timeout_ms = 30000,
  },
  -- Called as on_attach(client, bufnr) when the server attaches to a buffer.
  on_attach = nil,
}

local function is_list(t)
  if vim.islist then
    return vim.islist(t)
  end
  return vim.tbl_islist(t)
end

--- Deep merge: dictionaries merge key by key, lists and scalars from `top` replace those in `base`.
---@param base table
---@param top table?
---@return table
function M.merge(base, top)
  local out = vim.deepcopy(base)
  for key, value in pairs(top or {}) do
    local old = out[key]
    if
      type(value) == "table"
      and type(old) == "table"
      and not (is_list(value) and next(value) ~= nil)
      and not (is_list(old) and next(old) ~= nil)
    then
      out[key] = M.merge(old, value)
    else
      out[key] = vim.deepcopy(value)
    end
  end
  return out
end

M.options = vim.deepcopy(M.defaults)

local function check(name, value, types, optional)
  if value == nil and optional then
    return
  end
  for _, t in ipairs(types) do
    if type(value) == t then
      return
    end
  end
  error(("codellama: option %s must be a %s, not %s"):format(name, table.concat(types, " or "), type(value)), 3)
end

---@param opts table?
---@return table
function M.set(opts)
  check("opts", opts, { "table" }, true)
  local options = M.merge(M.defaults, opts or {})
  check("cmd", options.cmd, { "table", "function" })
  check("cmd_env", options.cmd_env, { "table" }, true)
  check("filetypes", options.filetypes, { "table" })
  check("root_markers", options.root_markers, { "table" })
  check("settings", options.settings, { "table" })
  check("inline", options.inline, { "table" })
  check("inline.keymaps", options.inline.keymaps, { "table" })
  check("keymaps", options.keymaps, { "table" })
  check("float", options.float, { "table" })
  check("streaming", options.streaming, { "boolean" })
  check("on_attach", options.on_attach, { "function" }, true)
  M.options = options
  return options
end

function M.get()
  return M.options
end

return M
