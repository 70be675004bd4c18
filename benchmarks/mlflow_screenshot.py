"""Screenshot of a sweep's nested runs in a real MLflow UI, in a real browser (the README's picture).

    mlflow ui --backend-store-uri sqlite:///$PWD/mlflow.db --port 5000 &
    pip install playwright; apt-get install chromium      # a browser; nothing is downloaded at run time
    .venv/bin/python benchmarks/mlflow_screenshot.py http://127.0.0.1:5000 raysweep-demo demo benchmarks/mlflow_ui.png

Opens the experiment on its training runs (`?workflowType=machine_learning`: MLflow 3's UI opens in
its GenAI mode otherwise), expands the sweep's parent run and saves the page.
"""

from __future__ import annotations

import sys

from mlflow.tracking import MlflowClient
from playwright.sync_api import sync_playwright


def main(url: str, experiment: str, sweep: str, out: str, browser: str = "/usr/bin/chromium") -> int:
    exp = MlflowClient(tracking_uri=url).get_experiment_by_name(experiment)
    page_url = f"{url}/#/experiments/{exp.experiment_id}?workflowType=machine_learning"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=browser, args=["--no-sandbox"])
        page = b.new_page(viewport={"width": 1500, "height": 820})
        page.goto(page_url)
        page.get_by_text("matching runs").wait_for(timeout=60_000)
        close = page.get_by_role("button", name="Close")  # the assistant side panel, if shown
        if close.count():
            close.first.click()
        # the "+" before the parent run's name expands its nested trial runs
        name = page.get_by_text(sweep, exact=True).first
        cell = name.locator("xpath=ancestor::*[@role='gridcell'][1]")
        cell.locator("button, [role='button']").first.click()
        page.wait_for_timeout(1500)
        page.screenshot(path=out)
        b.close()
    print(f"wrote {out} from {page_url}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:]))
