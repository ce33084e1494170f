-- The explanation float: markdown in a floating window (q or <Esc> closes it), and the live one that
-- grows while the server streams an answer (codellama/partial).
local lsp = require("codellama.lsp")

local M = {}

local api = vim.api

local options = nil ---@type table?

-- The float shown last: { win, buf, title, live }; `live` is the token of an answer still being written.
M.current = nil

---@param opts table
function M.setup(opts)
  options = opts
end

local function emit(pattern, data)
  pcall(api.nvim_exec_autocmds, "User", { pattern = pattern, modeline = false, data = data })
end

--- Close the explanation window, if open.
function M.close()
  if M.current and api.nvim_win_is_valid(M.current.win) then
    pcall(api.nvim_win_close, M.current.win, true)
  end
  M.current = nil
end

--- The float's size and place for these lines.
---@param title string
---@param lines string[]
---@return table config for nvim_open_win / nvim_win_set_config
local function layout(title, lines)
  local style = options and options.float or {}
  local columns, rows = vim.o.columns, vim.o.lines
  local width = #title + 4
  for _, line in ipairs(lines) do
    width = math.max(width, vim.fn.strdisplaywidth(line))
  end
  width = math.max(20, math.min(width, style.max_width or 100, columns - 4))
  local height = 0
  for _, line in ipairs(lines) do
    height = height + math.max(1, math.ceil(vim.fn.strdisplaywidth(line) / width))
  end
  height = math.max(1, math.min(height, style.max_height or 30, rows - 4))
  local config = {
    relative = "editor",
    width = width,
    height = height,
    row = math.max(0, math.floor((rows - height) / 2) - 1),
    col = math.max(0, math.floor((columns - width) / 2)),
  }
  if vim.fn.has("nvim-0.9") == 1 and (style.border or "rounded") ~= "none" then
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
function M.show(title, markdown, live)
  local lines = vim.split(markdown or "", "\n", { plain = true })
  local current = M.current
  if current and current.live and api.nvim_win_is_valid(current.win) and (not live or live.token == current.live) then
    fill(current.buf, lines)
    api.nvim_win_set_config(current.win, layout(title, lines))
    current.title, current.live = title, live and live.token or nil
    emit("CodellamaFloat", { win = current.win, buf = current.buf, title = title, live = current.live })
    return current.win, current.buf
  end
  M.close()
  local style = options and options.float or {}
  local buf = api.nvim_create_buf(false, true)
  fill(buf, lines)
  vim.bo[buf].bufhidden = "wipe"
  vim.bo[buf].filetype = "markdown"

  local config = vim.tbl_extend("force", layout(title, lines), {
    style = "minimal",
    border = style.border or "rounded",
    zindex = 50,
  })
  local enter = style.enter ~= false
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
    vim.keymap.set("n", key, M.close, { buffer = buf, nowait = true, silent = true, desc = "codellama: close" })
  end
  if not enter then
    api.nvim_create_autocmd({ "CursorMoved", "InsertEnter", "BufLeave" }, {
      buffer = source,
      once = true,
      callback = function()
        if M.current and M.current.win == win then
          M.close()
        end
      end,
    })
  end
  M.current = { win = win, buf = buf, title = title, live = live and live.token or nil }
  emit("CodellamaFloat", { win = win, buf = buf, title = title, live = M.current.live })
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
  local ours = M.current and M.current.live == partial.token
  if partial.done then
    finished_count = finished_count + 1
    if finished_count > 100 then
      finished, finished_count = {}, 1
    end
    finished[partial.token] = true
    if ours and not (markdown and partial.outcome == "done") then
      M.close()
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
  M.show(title, text, { token = partial.token, enter = markdown })
  emit("CodellamaPartial", { token = partial.token, action = partial.action, length = #text })
end

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

return M
