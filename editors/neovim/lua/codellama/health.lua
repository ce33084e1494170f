-- :checkhealth codellama
local M = {}

local health = vim.health

--- `codellama-lsp check` (or `python -m lsp check`) from the configured serve command: the same program,
--- with `serve` and its own flags replaced by `check`.
---@param cmd string[]
---@return string[]?
function M.check_command(cmd)
  if type(cmd) ~= "table" then
    return nil
  end
  local serve
  for i, arg in ipairs(cmd) do
    if arg == "serve" then
      serve = i
      break
    end
  end
  if not serve then
    return nil
  end
  local out = {}
  for i = 1, serve - 1 do
    out[#out + 1] = cmd[i]
  end
  out[#out + 1] = "check"
  local i = serve + 1
  while i <= #cmd do
    local arg = cmd[i]
    if arg == "--tcp" then
      i = i + 1
    elseif arg ~= "--stdio" and not arg:match("^%-%-tcp=") then
      out[#out + 1] = arg
    end
    i = i + 1
  end
  return out
end

local function report_executable(options)
  if type(options.cmd) == "function" then
    health.info("cmd is a function; the executable cannot be checked")
    return nil
  end
  local program = options.cmd[1]
  if not program or vim.fn.executable(program) == 0 then
    health.error(("server executable not found: %s"):format(tostring(program)), {
      "Install the server: pip install codellama-lsp (gives `codellama-lsp`)",
      'Or point setup() at it: cmd = { "/path/to/python", "-m", "lsp", "serve" }',
    })
    return nil
  end
  health.ok(("server executable: %s (%s)"):format(program, vim.fn.exepath(program)))
  return program
end

local function report_clients()
  local lsp = require("codellama.lsp")
  local clients = lsp.clients()
  if #clients == 0 then
    health.warn("the language server is not running", {
      "It starts when you open a file of a configured filetype (options.filetypes)",
      "See :LspLog if it started and exited",
    })
    return
  end
  for _, client in ipairs(clients) do
    local info = client.server_info or {}
    local buffers = {}
    for bufnr in pairs(client.attached_buffers or {}) do
      local name = vim.api.nvim_buf_get_name(bufnr)
      buffers[#buffers + 1] = name ~= "" and vim.fn.fnamemodify(name, ":~:.") or ("buffer " .. bufnr)
    end
    health.ok(
      ("server running: %s %s (client %d, root %s), attached to %s"):format(
        info.name or client.name,
        info.version or "",
        client.id,
        client.root_dir or client.config.root_dir or "none",
        #buffers > 0 and table.concat(buffers, ", ") or "no buffer"
      )
    )
    local caps = client.server_capabilities or {}
    if caps.inlineCompletionProvider then
      health.ok("the server offers inline completion")
    else
      health.warn("the server does not offer textDocument/inlineCompletion")
    end
    local status = lsp.statuses[client.id]
    if status then
      local line = ("last status: %s%s%s"):format(
        status.state,
        status.backend and (" (" .. status.backend .. ")") or "",
        status.message and status.message ~= "" and (": " .. status.message) or ""
      )
      if status.state == "error" then
        health.warn(line)
      else
        health.ok(line)
      end
    end
  end
end

local function report_backend(options)
  local cmd = M.check_command(options.cmd)
  if not cmd then
    health.info("cmd has no `serve` argument; skipping `check` (run `codellama-lsp check` yourself)")
    return
  end
  local settings = vim.deepcopy(options.settings or {})
  local env = vim.deepcopy(options.cmd_env or {})
  if settings.apiToken then
    -- The token goes through the environment, never into a file or the command line.
    env.CODELLAMA_LSP_API_TOKEN = settings.apiToken
    settings.apiToken = nil
  end
  local file = vim.fn.tempname() .. ".json"
  vim.fn.writefile({ vim.json.encode(next(settings) and settings or vim.empty_dict()) }, file)
  table.insert(cmd, "--settings")
  table.insert(cmd, file)
  local ok, process = pcall(vim.system, cmd, { text = true, env = next(env) and env or nil })
  if not ok then
    vim.fn.delete(file)
    health.error("could not run " .. table.concat(cmd, " ") .. ": " .. tostring(process))
    return
  end
  local timeout = (options.health or {}).check_timeout_ms or 30000
  local result = process:wait(timeout)
  vim.fn.delete(file)
  local shown = table.concat(vim.list_slice(cmd, 1, #cmd - 2), " ")
  if result.code == 124 and (result.signal or 0) ~= 0 then
    health.error(("`%s` did not finish within %d ms"):format(shown, timeout), {
      "Is the endpoint reachable? Set settings.endpoint (or CODELLAMA_LSP_ENDPOINT)",
    })
    return
  end
  local found = {}
  for line in (result.stdout or ""):gmatch("[^\n]+") do
    local key, value = line:match("^(%w+):%s*(.-)%s*$")
    if key then
      found[key] = value
    end
  end
  if result.code ~= 0 then
    local stderr = vim.trim(result.stderr or "")
    health.error(("backend check failed (`%s` exited %d): %s"):format(shown, result.code, stderr ~= "" and stderr or "no message"), {
      "Check settings.endpoint / settings.backend, and that the model server is up",
    })
    for _, key in ipairs({ "backend", "endpoint", "model" }) do
      if found[key] then
        health.info(key .. ": " .. found[key])
      end
    end
    return
  end
  health.ok(("backend reachable: %s%s, model %s"):format(
    found.backend or "?",
    found.endpoint and (" at " .. found.endpoint) or "",
    found.model or "?"
  ))
  for _, key in ipairs({ "limits", "version", "generate", "tokenize" }) do
    if found[key] then
      health.info(key .. ": " .. found[key])
    end
  end
  if found.status ~= "ok" then
    health.warn("`check` did not report status ok")
  end
end

local function report_inline(options)
  local inline = require("codellama.inline")
  if not options.inline.enable then
    health.info("inline completion is disabled in the options (inline.enable = false)")
    return
  end
  if inline.native() then
    health.ok("inline completion: Neovim's vim.lsp.inline_completion")
  else
    health.ok(("inline completion: the plugin's ghost text (debounce %d ms, highlight %s)"):format(
      options.inline.debounce_ms,
      options.inline.hl_group
    ))
  end
  if not inline.is_enabled() then
    health.info("inline completion is toggled off (:CodellamaToggle)")
  end
  local keys = {}
  for _, m in ipairs(inline.mappings()) do
    keys[#keys + 1] = m.lhs
  end
  if #keys > 0 then
    health.info("insert mode keys: " .. table.concat(keys, " "))
  end
end

function M.check()
  health.start("codellama: Neovim")
  local v = vim.version()
  local version = ("%d.%d.%d"):format(v.major, v.minor, v.patch)
  if vim.fn.has("nvim-0.11") == 1 then
    health.ok("Neovim " .. version)
  elseif vim.fn.has("nvim-0.10") == 1 then
    health.ok("Neovim " .. version .. " (0.11+ adds vim.lsp.config; this plugin starts the client itself)")
  else
    health.error("Neovim " .. version .. ": 0.10 or newer is needed")
    return
  end

  local codellama = require("codellama")
  local options = require("codellama.config").get()
  health.start("codellama: setup")
  if codellama.did_setup then
    health.ok("require('codellama').setup() was called")
  else
    health.warn("require('codellama').setup() has not been called", { "Call it from your init.lua" })
  end

  health.start("codellama: server")
  report_executable(options)
  report_clients()

  health.start("codellama: backend")
  report_backend(options)

  health.start("codellama: inline completion")
  report_inline(options)
end

return M
