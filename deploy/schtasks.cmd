@echo off
rem Village returns pipeline: create a Windows scheduled task that runs every night at 01:30.
rem Replace the two paths first (see README, "Running it every night"):
rem   D:\village-returns                                 the working folder (pipeline.toml, inbox, outbox)
rem   D:\village-returns\venv\Scripts\pipeline.exe       the installed command ("where pipeline" prints it)
rem Run this file once, in a command prompt, as the user the task should run as: /RP * asks for
rem that user's password, so the task also runs when nobody is logged on. /F replaces an older task.
rem The run's output is appended to nightly.log in the working folder.

schtasks /Create /F /SC DAILY /ST 01:30 /TN "VillageReturns\Nightly" /RU "%USERDOMAIN%\%USERNAME%" /RP * /TR "cmd /c cd /d D:\village-returns && D:\village-returns\venv\Scripts\pipeline.exe run >> nightly.log 2>&1"
