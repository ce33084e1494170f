-- codellama.nvim: CodeLlama-70B-Instruct in Neovim through the codellama-lsp language server.
--
--   require("codellama").setup({
--     settings = { endpoint = "http://localhost:8080" },
--   })
--
-- setup() may be called again (for example after changing options): it replaces the autocommands,
-- mappings and user commands of the previous call, keeps the running client, and sends changed
-- settings to it.
local config = require("codellama.config")
local lsp = require("codellama.lsp")
local inline = require("codellama.inline")
local commands = require("codellama.commands")

local M = {}

local api = vim.api

M.did_setup = false

---@param opts table? options, deep-merged over require("codellama.config").defaults
function M.setup(opts)
  if vim.fn.has("nvim-0.10") ~= 1 then
    vim.notify("codellama: Neovim 0.10 or newer is needed", vim.log.levels.ERROR)
    return
  end
  local options = config.set(opts)
  local group = api.nvim_create_augroup("codellama", { clear = true })

  inline.setup(options)
  commands.setup(options)

  api.nvim_create_autocmd("LspAttach", {
    group = group,
    desc = "codellama: set up buffers the server attaches to",
    callback = function(args)
      local client = vim.lsp.get_client_by_id(args.data.client_id)
      if not client or client.name ~= lsp.name then
        return
      end
      inline.attach(client, args.buf)
      if options.on_attach then
        options.on_attach(client, args.buf)
      end
    end,
  })
  api.nvim_create_autocmd("LspDetach", {
    group = group,
    desc = "codellama: forget buffers the server left",
    callback = function(args)
      local client = vim.lsp.get_client_by_id(args.data.client_id)
      if client and client.name == lsp.name then
        inline.detach(args.buf)
      end
    end,
  })

  lsp.setup(options, group)

  -- A second setup() replaced the autocommands above: re-attach the buffers the server already has.
  for _, client in ipairs(lsp.clients()) do
    for bufnr in pairs(client.attached_buffers or {}) do
      if api.nvim_buf_is_loaded(bufnr) then
        inline.attach(client, bufnr)
      end
    end
  end
  M.did_setup = true
end

--- For a statusline: "codellama: idle", "codellama: busy", "codellama: error: ...", "codellama: off",
--- or "" when no server runs.
---@param bufnr integer?
---@return string
function M.status(bufnr)
  local status = lsp.status(bufnr)
  if not status then
    return ""
  end
  if not inline.is_enabled() and status.state == "idle" then
    return "codellama: off"
  end
  local text = "codellama: " .. status.state
  if status.state == "error" and status.message and status.message ~= "" then
    local message = status.message:gsub("%s+", " ")
    if #message > 60 then
      message = message:sub(1, 57) .. "..."
    end
    text = text .. ": " .. message
  end
  return text
end

--- The raw status: { state, message, backend } from the server's last codellama/status, or nil.
M.status_info = lsp.status

-- For your own mappings (each returns false when there was nothing to do).
M.accept = inline.accept
M.accept_line = function()
  return inline.accept({ line = true })
end
M.dismiss = inline.dismiss
M.next = function()
  return inline.cycle(1)
end
M.prev = function()
  return inline.cycle(-1)
end
M.visible = inline.visible
M.run = commands.run
M.toggle = commands.toggle
M.show_markdown = commands.show_markdown

return M
