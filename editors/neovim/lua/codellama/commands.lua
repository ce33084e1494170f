-- User commands (:CodellamaExplain, :CodellamaRefactor, ...) and the client-side handlers for the
-- commands the server's code actions carry. The explanation float is codellama.float.
local lsp = require("codellama.lsp")
local inline = require("codellama.inline")

local M = {}

local api = vim.api


local RUN = "codellama.run"
local TOGGLE = "codellama.toggleCompletions"
local SHOW_EXPLANATION = "codellama.showExplanation"
local REVIEW_PROPOSAL = "codellama.reviewProposal"

local options = nil ---@type table?
local mapped = {} ---@type {mode: string, lhs: string}[]

local float = require("codellama.float")
M.close_float = float.close
M.show_markdown = float.show
M.on_partial = float.on_partial

local function notify(message, level)
  vim.notify("codellama: " .. message, level or vim.log.levels.INFO)
end

local function emit(pattern, data)
  pcall(api.nvim_exec_autocmds, "User", { pattern = pattern, modeline = false, data = data })
end

--- The LSP range a command works on: the visual selection, the given lines, or the cursor (the server
--- then takes the enclosing function).
---@param client vim.lsp.Client
---@param bufnr integer
---@param cmd {range: integer, line1: integer, line2: integer}?
function M.target(client, bufnr, cmd)
  local line_count = api.nvim_buf_line_count(bufnr)
  if cmd and cmd.range and cmd.range > 0 then
    local first, last = cmd.line1, cmd.line2
    local vstart, vend = vim.fn.getpos("'<"), vim.fn.getpos("'>")
    if cmd.range == 2 and vim.fn.visualmode() == "v" and vstart[2] == first and vend[2] == last then
      local last_line = api.nvim_buf_get_lines(bufnr, last - 1, last, false)[1] or ""
      local end_col = math.min(vend[3], #last_line) -- 1-based, inclusive: the byte where the last char starts
      if end_col > 0 and vim.str_utf_end then
        end_col = end_col + vim.str_utf_end(last_line, end_col)
      end
      return {
        start = lsp.position(client, bufnr, first - 1, math.max(0, vstart[3] - 1)),
        ["end"] = lsp.position(client, bufnr, last - 1, end_col),
      }
    end
    local finish
    if last < line_count then
      finish = { line = last, character = 0 }
    else
      local text = api.nvim_buf_get_lines(bufnr, last - 1, last, false)[1] or ""
      finish = lsp.position(client, bufnr, last - 1, #text)
    end
    return { start = { line = first - 1, character = 0 }, ["end"] = finish }
  end
  local cursor = api.nvim_win_get_cursor(0)
  local here = lsp.position(client, bufnr, cursor[1] - 1, cursor[2])
  return { start = here, ["end"] = here }
end

local TITLES = {
  explain = "Explain",
  refactor = "Refactor",
  docstring = "Add docstring",
  ask = "Ask",
  fix = "Fix",
  tests = "Write tests",
}

--- Run an action through `codellama.run`: markdown answers open in a float, code answers are applied
--- by the server (a versioned workspace/applyEdit).
---@param action string explain|refactor|docstring|ask|fix
---@param cmd {range: integer, line1: integer, line2: integer, args: string?}? the user command's arguments
---@param callback fun(err: table?, result: table?)? called with the server's answer
function M.run(action, cmd, callback)
  local bufnr = api.nvim_get_current_buf()
  local client = lsp.client(bufnr)
  if not client then
    notify("the server is not attached to this buffer (see :checkhealth codellama)", vim.log.levels.WARN)
    return
  end
  local instruction = cmd and cmd.args or ""
  if action == "ask" and instruction == "" then
    notify("what is the question? :CodellamaAsk {question}", vim.log.levels.WARN)
    return
  end
  local markdown = action == "explain" or action == "ask"
  local argument = {
    action = action,
    uri = vim.uri_from_bufnr(bufnr),
    range = M.target(client, bufnr, cmd),
    instruction = instruction ~= "" and instruction or nil,
    apply = not markdown,
    show = false,
  }
  local title = TITLES[action] or action
  emit("CodellamaRequest", { action = action, bufnr = bufnr })
  lsp.execute(client, bufnr, RUN, { argument }, function(err, result)
    if err then
      notify(("%s failed: %s"):format(title, err.message or vim.inspect(err)), vim.log.levels.ERROR)
    elseif type(result) ~= "table" then
      notify(title .. ": the server sent no answer", vim.log.levels.ERROR)
    elseif result.kind == "markdown" then
      M.show_markdown("CodeLlama: " .. title, result.text or "")
    elseif result.applied == false then
      notify(title .. ": not applied", vim.log.levels.WARN)
    end
    emit("CodellamaResult", { action = action, bufnr = bufnr, error = err, result = result })
    if callback then
      callback(err, result)
    end
  end)
end

--- Turn inline completion on or off, in the server and here; nil flips it.
---@param value boolean?
function M.toggle(value)
  local bufnr = api.nvim_get_current_buf()
  local client = lsp.client(bufnr) or lsp.clients()[1]
  local function done(now)
    inline.set_enabled(now)
    notify("inline completion " .. (now and "on" or "off"))
    emit("CodellamaToggle", { enabled = now })
  end
  if not client then
    if value == nil then
      value = not inline.is_enabled()
    end
    done(value)
    return
  end
  local arguments = value ~= nil and { value } or nil
  lsp.execute(client, bufnr, TOGGLE, arguments, function(err, result)
    if err then
      notify("toggle failed: " .. (err.message or vim.inspect(err)), vim.log.levels.ERROR)
      return
    end
    local now = result
    if type(now) ~= "boolean" then
      now = value == nil and not inline.is_enabled() or value
    end
    -- Other running servers follow the one that answered.
    for _, other in ipairs(lsp.clients()) do
      if other.id ~= client.id then
        lsp.execute(other, bufnr, TOGGLE, { now }, function() end)
      end
    end
    done(now)
  end)
end

--- Client side of the commands the code actions carry.
local function register_lsp_commands()
  vim.lsp.commands[SHOW_EXPLANATION] = function(command)
    local arg = (command.arguments or {})[1] or {}
    M.show_markdown(arg.title and ("CodeLlama: " .. arg.title) or "CodeLlama", arg.markdown or "")
    emit("CodellamaResult", { action = "explain", result = { kind = "markdown", text = arg.markdown } })
  end
  vim.lsp.commands[REVIEW_PROPOSAL] = function(command, ctx)
    local arg = (command.arguments or {})[1] or {}
    local bufnr = arg.uri and vim.uri_to_bufnr(arg.uri) or ctx.bufnr
    local client = vim.lsp.get_client_by_id(ctx.client_id)
    local reason = arg.reason or "the proposal may not be valid code"
    M.show_markdown("CodeLlama: " .. (arg.title or "Proposal"), ("**%s**\n\n```%s\n%s\n```"):format(reason, vim.bo[bufnr].filetype, arg.text or ""))
    vim.ui.select({ "Apply anyway", "Cancel" }, { prompt = "codellama: " .. reason .. ". Apply it?" }, function(choice)
      M.close_float()
      if choice ~= "Apply anyway" or not client then
        return
      end
      if vim.lsp.util.buf_versions[bufnr] ~= arg.version then
        notify("the document changed; not applied", vim.log.levels.WARN)
        return
      end
      vim.lsp.util.apply_workspace_edit({
        documentChanges = {
          {
            textDocument = { uri = arg.uri, version = arg.version },
            edits = { { range = arg.range, newText = arg.text } },
          },
        },
      }, client.offset_encoding or "utf-16")
    end)
  end
end

local COMMANDS = {
  { name = "CodellamaExplain", action = "explain", nargs = 0, desc = "Explain the selection (or the function at the cursor)" },
  { name = "CodellamaRefactor", action = "refactor", nargs = "*", desc = "Refactor the selection: [instruction]" },
  { name = "CodellamaAsk", action = "ask", nargs = "+", desc = "Ask about the selection: {question}" },
  { name = "CodellamaDocstring", action = "docstring", nargs = 0, desc = "Add a docstring to the function at the cursor" },
  { name = "CodellamaFix", action = "fix", nargs = "*", desc = "Fix the selection: [what is wrong]" },
}

local function map(mode, lhs, rhs, desc)
  if not lhs or lhs == "" then
    return
  end
  vim.keymap.set(mode, lhs, rhs, { desc = "codellama: " .. desc, silent = mode ~= "c" })
  table.insert(mapped, { mode = mode, lhs = lhs })
end

---@param opts table
function M.setup(opts)
  options = opts
  float.setup(opts)
  for _, spec in ipairs(COMMANDS) do
    api.nvim_create_user_command(spec.name, function(cmd)
      M.run(spec.action, cmd)
    end, { nargs = spec.nargs, range = true, desc = "codellama: " .. spec.desc })
  end
  api.nvim_create_user_command("CodellamaToggle", function(cmd)
    local value = nil
    if cmd.args == "on" or cmd.args == "true" then
      value = true
    elseif cmd.args == "off" or cmd.args == "false" then
      value = false
    elseif cmd.args ~= "" then
      notify("CodellamaToggle takes on, off or nothing", vim.log.levels.WARN)
      return
    end
    M.toggle(value)
  end, {
    nargs = "?",
    complete = function()
      return { "on", "off" }
    end,
    desc = "codellama: turn inline completion on/off",
  })
  register_lsp_commands()

  for _, m in ipairs(mapped) do
    pcall(vim.keymap.del, m.mode, m.lhs)
  end
  mapped = {}
  local keys = opts.keymaps or {}
  for _, spec in ipairs({
    { key = keys.explain, cmd = "CodellamaExplain", desc = "explain" },
    { key = keys.refactor, cmd = "CodellamaRefactor", desc = "refactor" },
    { key = keys.docstring, cmd = "CodellamaDocstring", desc = "add a docstring" },
  }) do
    map("n", spec.key, "<Cmd>" .. spec.cmd .. "<CR>", spec.desc)
    map("x", spec.key, ":" .. spec.cmd .. "<CR>", spec.desc)
  end
  if keys.ask then
    vim.keymap.set("n", keys.ask, ":CodellamaAsk ", { desc = "codellama: ask" })
    vim.keymap.set("x", keys.ask, ":CodellamaAsk ", { desc = "codellama: ask" })
    table.insert(mapped, { mode = "n", lhs = keys.ask })
    table.insert(mapped, { mode = "x", lhs = keys.ask })
  end
  map("n", keys.toggle, "<Cmd>CodellamaToggle<CR>", "toggle inline completion")
end

function M.mappings()
  return vim.deepcopy(mapped)
end

return M
