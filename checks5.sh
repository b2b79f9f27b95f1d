cd /work/notes/s40/final
for d in hP/*; do for r in 1 2 3 4 5; do echo "$d $r"; done; done | xargs -P 3 -n 2 sh -c 'res=$(timeout 150 /work/main/.venv/bin/python run_check.py $0/01_open_channel_request.ipynb 2>/dev/null || echo TIMEOUT); echo "$(basename $0)|$1|$res"' > checks5.txt
echo finished >> checks5.txt
