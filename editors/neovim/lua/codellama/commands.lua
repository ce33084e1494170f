-- User commands (:CodellamaExplain, :CodellamaRefactor, ...), the explanation float, and the client-side
-- handlers for the commands the server's code actions carry.
local lsp = require("codellama.lsp")
local inline = require("codellama.inline")

local M = {}

local api = vim.api

-- Partials are shown in the order they came, before the action's answer (which the server sends after
-- them): deferring them could let a late one reopen a live float over the final text.
lsp.on_partial = function(partial)
  if vim.in_fast_event() then
    vim.schedule(function()
      M.on_partial(partial)
    end)
  else
    M.on_partial(partial)
  end
end

local RUN = "codellama.run"
local TOGGLE = "codellama.toggleCompletions"
local SHOW_EXPLANATION = "codellama.showExplanation"
local REVIEW_PROPOSAL = "codellama.reviewProposal"

local options = nil ---@type table?
local mapped = {} ---@type {mode: string, lhs: string}[]

-- The explanation window shown last: { win, buf }.
M.float = nil

local function notify(message, level)
  vim.notify("codellama: " .. message, level or vim.log.levels.INFO)
end

local function emit(pattern, data)
  pcall(api.nvim_exec_autocmds, "User", { pattern = pattern, modeline = false, data = data })
end

--- Close the explanation window, if open.
function M.close_float()
  if M.float and api.nvim_win_is_valid(M.float.win) then
    pcall(api.nvim_win_close, M.float.win, true)
  end
  M.float = nil
end

--- The float's size and place for these lines.
---@param title string
---@param lines string[]
---@return table config for nvim_open_win / nvim_win_set_config
local function layout(title, lines)
  local float = options and options.float or {}
  local columns, rows = vim.o.columns, vim.o.lines
  local width = #title + 4
  for _, line in ipairs(lines) do
    width = math.max(width, vim.fn.strdisplaywidth(line))
  end
  width = math.max(20, math.min(width, float.max_width or 100, columns - 4))
  local height = 0
  for _, line in ipairs(lines) do
    height = height + math.max(1, math.ceil(vim.fn.strdisplaywidth(line) / width))
  end
  height = math.max(1, math.min(height, float.max_height or 30, rows - 4))
  local config = {
    relative = "editor",
    width = width,
    height = height,
    row = math.max(0, math.floor((rows - height) / 2) - 1),
    col = math.max(0, math.floor((columns - width) / 2)),
  }
  if vim.fn.has("nvim-0.9") == 1 and (float.border or "rounded") ~= "none" then
    config.title = " " .. title .. " "
    config.title_pos = "center"
  end
  return config
end

local function fill(buf, lines)
  vim.bo[buf].modifiable = true
  api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.bo[buf].modifiable = false
end

--- Show markdown in a floating window (filetype markdown); q or <Esc> closes it. A float still showing
--- a streamed answer (opened with `live`) is reused: the final text replaces the partial one in place.
---@param title string
---@param markdown string
---@param live {token: string, enter: boolean}? the answer is still being written
---@return integer win, integer buf
function M.show_markdown(title, markdown, live)
  local lines = vim.split(markdown or "", "\n", { plain = true })
  local current = M.float
  if current and current.live and api.nvim_win_is_valid(current.win) and (not live or live.token == current.live) then
    fill(current.buf, lines)
    api.nvim_win_set_config(current.win, layout(title, lines))
    current.title, current.live = title, live and live.token or nil
    emit("CodellamaFloat", { win = current.win, buf = current.buf, title = title, live = current.live })
    return current.win, current.buf
  end
  M.close_float()
  local float = options and options.float or {}
  local buf = api.nvim_create_buf(false, true)
  fill(buf, lines)
  vim.bo[buf].bufhidden = "wipe"
  vim.bo[buf].filetype = "markdown"

  local config = vim.tbl_extend("force", layout(title, lines), {
    style = "minimal",
    border = float.border or "rounded",
    zindex = 50,
  })
  local enter = float.enter ~= false
  if live then
    enter = enter and live.enter
  end
  local source = api.nvim_get_current_buf()
  local win = api.nvim_open_win(buf, enter, config)
  vim.wo[win].wrap = true
  vim.wo[win].linebreak = true
  vim.wo[win].conceallevel = 2
  vim.wo[win].concealcursor = "n"
  for _, key in ipairs({ "q", "<Esc>" }) do
    vim.keymap.set("n", key, M.close_float, { buffer = buf, nowait = true, silent = true, desc = "codellama: close" })
  end
  if not enter then
    api.nvim_create_autocmd({ "CursorMoved", "InsertEnter", "BufLeave" }, {
      buffer = source,
      once = true,
      callback = function()
        if M.float and M.float.win == win then
          M.close_float()
        end
      end,
    })
  end
  M.float = { win = win, buf = buf, title = title, live = live and live.token or nil }
  emit("CodellamaFloat", { win = win, buf = buf, title = title, live = M.float.live })
  return win, buf
end

local MARKDOWN_ACTIONS = { explain = true, ask = true }
-- Tokens whose work has ended: nothing more is shown for them.
local finished, finished_count = {}, 0

--- A `codellama/partial` notification: the answer so far grows in a float (explanations, answers), or
--- in a preview float for code (refactor, docstring, ...) that closes when the work ends, since the
--- edit is then offered as before. A finished explanation's float waits for the final text.
---@param partial {token: string, action: string?, title: string?, text: string?, done: boolean, outcome: string?}
function M.on_partial(partial)
  if options and options.streaming == false then
    return
  end
  if finished[partial.token] then
    return
  end
  local markdown = MARKDOWN_ACTIONS[partial.action] == true
  local ours = M.float and M.float.live == partial.token
  if partial.done then
    finished_count = finished_count + 1
    if finished_count > 100 then
      finished, finished_count = {}, 1
    end
    finished[partial.token] = true
    if ours and not (markdown and partial.outcome == "done") then
      M.close_float()
    end
    return
  end
  local text = partial.text or ""
  if text == "" then
    return
  end
  local title = partial.title or "CodeLlama"
  if not markdown then
    title = title .. " (preview)"
  end
  M.show_markdown(title, text, { token = partial.token, enter = markdown })
  emit("CodellamaPartial", { token = partial.token, action = partial.action, length = #text })
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
