import time
from kenomill import validation as v
import pandas as pd
if __name__ == "__main__":
    t=time.perf_counter()
    cmp=v.compare(progress=lambda n: print("cand", round(time.perf_counter()-t,1), flush=True))
    pd.set_option("display.width",250)
    print(cmp.table.round(2).to_string())
    print(cmp.stacking, cmp.describe_choice())
    cmp.rows.to_csv("/tmp/rows.csv")
    print(time.perf_counter()-t)
