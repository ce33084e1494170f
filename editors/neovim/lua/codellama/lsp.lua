-- The language server client: its configuration, starting it, and small helpers to talk to it that
-- work on Neovim 0.10 (dot-call client methods) as well as 0.11+ (colon-call).
local M = {}

M.name = "codellama"
M.STATUS = "codellama/status"
M.PARTIAL = "codellama/partial"

local has_011 = vim.fn.has("nvim-0.11") == 1
local uv = vim.uv or vim.loop

-- Set by codellama.commands: shows a `codellama/partial` notification (the live answer float).
M.on_partial = nil ---@type fun(result: table, ctx: table)?

-- Last `codellama/status` notification per client id: { state, message, backend, time }.
M.statuses = {}

local last_settings = nil ---@type table?

--- The `codellama` settings section as sent on the wire (an empty object, never an empty array).
---@param settings table
---@return table
function M.section(settings)
  if settings == nil or next(settings) == nil then
    return vim.empty_dict()
  end
  return vim.deepcopy(settings)
end

--- The client configuration handed to vim.lsp.config (0.11+) or vim.lsp.start (0.10).
---@param opts table the merged plugin options
---@return table
function M.client_config(opts)
  local section = M.section(opts.settings)
  return {
    cmd = opts.cmd,
    cmd_env = opts.cmd_env,
    filetypes = opts.filetypes,
    root_markers = opts.root_markers,
    -- `streaming`: the server sends codellama/partial (the answer so far) while an action runs.
    init_options = { codellama = section, streaming = opts.streaming ~= false },
    settings = { codellama = section },
    capabilities = {
      textDocument = { inlineCompletion = { dynamicRegistration = false } },
    },
    handlers = {
      [M.STATUS] = function(err, result, ctx)
        M.on_status(err, result, ctx)
      end,
      [M.PARTIAL] = function(_, result, ctx)
        if type(result) == "table" and M.on_partial then
          M.on_partial(result, ctx)
        end
      end,
    },
  }
end

---@param _ any
---@param result {state: string, message: string?, backend: string?}?
---@param ctx {client_id: integer}
function M.on_status(_, result, ctx)
  if type(result) ~= "table" then
    return
  end
  M.statuses[ctx.client_id] = {
    state = result.state or "idle",
    message = result.message ~= vim.NIL and result.message or nil,
    backend = result.backend ~= vim.NIL and result.backend or nil,
    time = uv.now(),
  }
  vim.schedule(function()
    pcall(vim.api.nvim_exec_autocmds, "User", {
      pattern = "CodellamaStatus",
      modeline = false,
      data = vim.tbl_extend("force", { client_id = ctx.client_id }, M.statuses[ctx.client_id] or {}),
    })
    pcall(vim.cmd.redrawstatus)
  end)
end

--- The root directory for a buffer: the nearest folder with a root marker, else the file's folder.
---@param bufnr integer
---@param markers string[]
---@return string?
function M.root_dir(bufnr, markers)
  local root = vim.fs.root and vim.fs.root(bufnr, markers) or nil
  if root then
    return root
  end
  local name = vim.api.nvim_buf_get_name(bufnr)
  return name ~= "" and vim.fs.dirname(name) or nil
end

--- Start (or reuse) the client for a buffer, Neovim 0.10 style.
---@param bufnr integer
---@param cfg table
---@param opts table
local function start_legacy(bufnr, cfg, opts)
  if vim.bo[bufnr].buftype ~= "" then
    return
  end
  local config = vim.tbl_extend("force", vim.deepcopy(cfg), { name = M.name, root_dir = M.root_dir(bufnr, opts.root_markers) })
  config.filetypes, config.root_markers = nil, nil
  -- 0.10 takes `capabilities` as the whole set, not as overrides of the defaults.
  config.capabilities = vim.tbl_deep_extend("force", vim.lsp.protocol.make_client_capabilities(), config.capabilities or {})
  local ok, err = pcall(vim.lsp.start, config, { bufnr = bufnr })
  if not ok then
    vim.notify_once("codellama: could not start the server: " .. tostring(err), vim.log.levels.ERROR)
  end
end

--- Configure and enable the client; calling it again replaces the configuration and sends changed
--- settings to running servers.
---@param opts table
---@param group integer the plugin's augroup (cleared on each setup)
function M.setup(opts, group)
  local cfg = M.client_config(opts)
  if vim.lsp.config and vim.lsp.enable then
    vim.lsp.config(M.name, cfg)
    vim.lsp.enable(M.name)
  else
    vim.api.nvim_create_autocmd("FileType", {
      group = group,
      pattern = opts.filetypes,
      desc = "codellama: start the language server",
      callback = function(args)
        start_legacy(args.buf, cfg, opts)
      end,
    })
    for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
      if vim.api.nvim_buf_is_loaded(bufnr) and vim.tbl_contains(opts.filetypes, vim.bo[bufnr].filetype) then
        start_legacy(bufnr, cfg, opts)
      end
    end
  end
  if last_settings ~= nil and not vim.deep_equal(last_settings, cfg.settings) then
    for _, client in ipairs(M.clients()) do
      client.settings = vim.deepcopy(cfg.settings)
      if client.config then
        client.config.settings = vim.deepcopy(cfg.settings)
      end
      M.notify(client, "workspace/didChangeConfiguration", { settings = cfg.settings })
    end
  end
  last_settings = vim.deepcopy(cfg.settings)
end

--- Running codellama clients, optionally only those attached to a buffer.
---@param bufnr integer?
---@return vim.lsp.Client[]
function M.clients(bufnr)
  local get = vim.lsp.get_clients or vim.lsp.get_active_clients
  return get({ name = M.name, bufnr = bufnr })
end

--- The codellama client attached to a buffer.
---@param bufnr integer?
---@return vim.lsp.Client?
function M.client(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and vim.api.nvim_get_current_buf() or bufnr
  return M.clients(bufnr)[1]
end

---@return boolean ok, integer? request_id
function M.request(client, method, params, handler, bufnr)
  if has_011 then
    return client:request(method, params, handler, bufnr)
  end
  return client.request(method, params, handler, bufnr)
end

function M.cancel(client, id)
  if has_011 then
    return client:cancel_request(id)
  end
  return client.cancel_request(id)
end

function M.notify(client, method, params)
  if has_011 then
    return client:notify(method, params)
  end
  return client.notify(method, params)
end

function M.is_stopped(client)
  if has_011 then
    return client:is_stopped()
  end
  return client.is_stopped()
end

--- workspace/executeCommand, answered through handler(err, result).
---@param client vim.lsp.Client
---@param bufnr integer
---@param command string
---@param arguments any[]?
---@param handler fun(err: table?, result: any)
function M.execute(client, bufnr, command, arguments, handler)
  local params = { command = command, arguments = arguments }
  local ok = M.request(client, "workspace/executeCommand", params, function(err, result)
    handler(err, result)
  end, bufnr)
  if not ok then
    handler({ message = "the codellama server has stopped" }, nil)
  end
end

--- An LSP position (in the client's encoding) from a 0-based row and byte column.
---@param client vim.lsp.Client
---@param bufnr integer
---@param row integer
---@param col integer
---@return {line: integer, character: integer}
function M.position(client, bufnr, row, col)
  local line = vim.api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ""
  col = math.max(0, math.min(col, #line))
  local encoding = client.offset_encoding or "utf-16"
  local character
  if encoding == "utf-8" then
    character = col
  elseif has_011 then
    character = vim.str_utfindex(line, encoding, col, false)
  else
    local ok, u32, u16 = pcall(vim.str_utfindex, line, col)
    if not ok then
      u32, u16 = vim.str_utfindex(line)
    end
    character = encoding == "utf-16" and u16 or u32
  end
  return { line = row, character = character }
end

--- A 0-based byte column from an LSP character offset on a line.
---@param line string
---@param character integer
---@param encoding string
---@return integer
function M.byte_col(line, character, encoding)
  if encoding == "utf-8" then
    return math.min(character, #line)
  end
  local ok, col
  if has_011 then
    ok, col = pcall(vim.str_byteindex, line, encoding, character, false)
  else
    ok, col = pcall(vim.str_byteindex, line, character, encoding == "utf-16")
  end
  return ok and math.min(col, #line) or #line
end

--- The latest status of the client attached to a buffer (or any client).
---@param bufnr integer?
---@return {state: string, message: string?, backend: string?}?
function M.status(bufnr)
  local client = M.client(bufnr) or M.clients()[1]
  if not client then
    return nil
  end
  return M.statuses[client.id] or { state = "starting" }
end

return M
